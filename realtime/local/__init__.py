"""The local front end of `stablesync run`/`demo`: capture devices and files in (`sources/`),
virtual camera, virtual microphone, mp4 and preview out (`sinks/`), the paced `runner` between
them, the device listing, and the camera take of `enroll`."""
