"""The real-time filter: live audio and video in, lip-synced face out (no torch on this path)."""
