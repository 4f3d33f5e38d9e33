-- A choice's whole state is the JSON document in `state`; the other columns are what queries need.
CREATE TABLE choices (
    id          TEXT PRIMARY KEY,
    status      TEXT NOT NULL,
    deadline_ms INTEGER,
    created_ms  INTEGER NOT NULL,
    resolved_ms INTEGER,
    source      TEXT,
    version     INTEGER NOT NULL,
    state       TEXT NOT NULL
);
CREATE INDEX choices_by_status ON choices (status, created_ms);
CREATE INDEX choices_by_created ON choices (created_ms);

-- Append-only. AUTOINCREMENT: a seq is never reused, even after retention deletes old rows.
CREATE TABLE events (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms     INTEGER NOT NULL,
    choice_id TEXT,
    type      TEXT NOT NULL,
    data      TEXT NOT NULL
);
CREATE INDEX events_by_choice ON events (choice_id, seq);
