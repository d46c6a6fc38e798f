"""The Discord bot: a client of the job API that separates songs for server members."""
