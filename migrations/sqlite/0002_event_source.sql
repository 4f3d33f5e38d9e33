-- The source of a note (and of a choice's events), so notes can be listed by source.
ALTER TABLE events ADD COLUMN source TEXT;
CREATE INDEX events_notes_by_source ON events (source, seq) WHERE type = 'note';
