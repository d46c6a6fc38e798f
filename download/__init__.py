"""Inputs from links: direct audio files (the service's guarded downloader) and pages that
yt-dlp resolves (YouTube, SoundCloud, Bandcamp, Vimeo, any page with audio or video), every
connection checked at connect time by a guarded proxy on loopback."""
