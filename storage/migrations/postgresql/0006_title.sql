-- A page link's track, as its page named it ("Artist – Title"): the thread, the summary and
-- /jobs history show it; NULL for files and direct links (the track name stands in).
ALTER TABLE jobs ADD COLUMN title TEXT;
