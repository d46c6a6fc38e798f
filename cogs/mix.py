"""`/mix job:<id> preset:<...>`: a job's mix posted in its thread, as the summary's buttons do."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.app_commands import Choice
from discord.ext import commands

from bot.mixing import LABELS

if TYPE_CHECKING:
    from bot.client import StemBot


@app_commands.guild_only()
class Mix(commands.Cog):
    def __init__(self, bot: StemBot) -> None:
        self.bot = bot

    @app_commands.command(name="mix", description="Post a job's mix (karaoke, drumless, …),"
                          " slower or transposed for practice")
    @app_commands.describe(job="The job number", preset="Which mix",
                           speed="Percent of the song's speed, pitch kept (default 100)",
                           semitones="Transpose, tempo kept (default 0)")
    @app_commands.choices(preset=[Choice(name=label, value=preset)
                                  for preset, label in LABELS.items()])
    async def mix(self, interaction: discord.Interaction, job: int, preset: Choice[str],
                  speed: app_commands.Range[int, 50, 150] = 100,
                  semitones: app_commands.Range[int, -12, 12] = 0) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        text = await self.bot.mixes.request(interaction.guild_id, job, preset.value, speed,
                                            semitones)
        await interaction.followup.send(text, ephemeral=True)


async def setup(bot: StemBot) -> None:
    await bot.add_cog(Mix(bot))
