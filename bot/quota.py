"""The per-guild limits on submissions; every refusal is one clear sentence."""

from __future__ import annotations

import time

from storage import GuildLimits, JobStore

DAY = 24 * 3600


async def refusal(jobs: JobStore, limits: GuildLimits, guild_id: int, user_id: int) -> str | None:
    """Why this member may not submit now, or None when they may."""
    if limits.max_concurrent:
        active = await jobs.count_active(guild_id, user_id)
        if active >= limits.max_concurrent:
            plural = "job" if active == 1 else "jobs"
            return f"you have {active} {plural} running; try again when one finishes."
    if limits.max_server_jobs:
        open_jobs = await jobs.count_active_in_guild(guild_id)
        if open_jobs >= limits.max_server_jobs:
            return (f"this server already has {open_jobs} jobs queued or running, its limit;"
                    " try again when one finishes.")
    now = time.time()
    if limits.cooldown_seconds:
        last = await jobs.last_submitted(guild_id, user_id)
        if last is not None and now - last < limits.cooldown_seconds:
            wait = int(limits.cooldown_seconds - (now - last)) + 1
            return f"slow down: this server allows one /separate every {limits.cooldown_seconds}" \
                   f" s; try again in {wait} s."
    if limits.daily_quota:
        used = await jobs.count_since(guild_id, user_id, now - DAY)
        if used >= limits.daily_quota:
            return (f"you have used this server's quota of {limits.daily_quota} separations"
                    f" in the last 24 hours; try again later.")
    return None
