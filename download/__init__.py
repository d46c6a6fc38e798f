"""Guarded fetching of user-supplied URLs, shared by the job service and the bot.

`addresses`: which hosts and ports a URL may reach (public addresses only, unless allowed);
`fetch`: the HTTP download within bounds of size, time, rate and redirects, every hop and
every resolved address checked; `errors`: what they refuse with; `pages`, `proxy`, `sites`:
pages that yt-dlp resolves (YouTube, SoundCloud, Bandcamp, Vimeo, any page with audio or
video), every connection checked at connect time by a guarded proxy on loopback. Nothing here
imports the service, the bot or the engine.
"""
