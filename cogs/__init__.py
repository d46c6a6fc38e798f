"""The bot's slash commands, one concern per cog: /separate, /job, /jobs."""
