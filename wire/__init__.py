"""What crosses the wire between the job service and its clients (the bot among them).

`enums`: job states and stem tones; `jobs`: the shapes of a job's inputs, outputs and results,
and the Job message as JSON; `signature`: the callback's HMAC header. The protocol's `method`
number is the engine's `separation.presets.StemPreset` value (the one stem/method enum, whose
`count` maps to and from stem counts). Nothing here imports the service, the bot, numpy or an
HTTP server: a client loads only this and the engine's light `separation.presets`.
"""
