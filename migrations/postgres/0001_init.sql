-- A choice's whole state is the JSON document in `state`; the other columns are what queries need.
CREATE TABLE choices (
    id          TEXT PRIMARY KEY,
    status      TEXT NOT NULL,
    deadline_ms BIGINT,
    created_ms  BIGINT NOT NULL,
    resolved_ms BIGINT,
    source      TEXT,
    version     BIGINT NOT NULL,
    state       TEXT NOT NULL
);
CREATE INDEX choices_by_status ON choices (status, created_ms);
CREATE INDEX choices_by_created ON choices (created_ms);

-- Append-only. Writers take an advisory lock before drawing seqs (see store.rs), so events
-- commit in seq order and a poller reading `seq > since` never skips one that commits late.
CREATE TABLE events (
    seq       BIGSERIAL PRIMARY KEY,
    at_ms     BIGINT NOT NULL,
    choice_id TEXT,
    type      TEXT NOT NULL,
    data      TEXT NOT NULL
);
CREATE INDEX events_by_choice ON events (choice_id, seq);
