"""`stablesync enroll`: a personal model fine-tuned on a short recording of the user.

Importing this package loads nothing heavy: `profiles` (stdlib only) is what the real-time
commands use to find a profile; the rest loads torch when it runs.
"""
