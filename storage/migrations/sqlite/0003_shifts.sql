-- /separate quality: how many shifted separations the service averages (1 = standard).
ALTER TABLE jobs ADD COLUMN shifts INTEGER NOT NULL DEFAULT 1;
