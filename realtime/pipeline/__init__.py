"""One stream's lip-sync pipeline, shared by every front end: frames and audio in (`frames`),
tracking, the mel timeline, the shared inference batcher, the renderer (`compositing`,
`render/`), the audio delay rule (`delivery`), telemetry and faults, all timed by a `clock`."""
