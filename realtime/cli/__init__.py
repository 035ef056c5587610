"""The real-time commands' front ends (`stablesync run`, `demo`, `serve`, `devices`, `detect`,
`enroll`): options, input checks, the start-up block; each `main(args)` hands over to the
pipeline (`stablesync.realtime.local.runner`, `stablesync.realtime.webrtc`)."""
