-- Users and video records. Portable SQL: the same file runs on SQLite and PostgreSQL (through
-- sqlx's `Any` driver), so types are limited to TEXT and BIGINT; ids are UUIDs as text, times
-- are RFC 3339 UTC text (fixed width, so they sort as text), JSON is text.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'user')),
    -- NULL while the user is active; a disabled user can neither log in nor use old tokens.
    disabled_at   TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

-- Video records for the video endpoints (next slice). The owner is the source of truth for
-- "another user's video is 404".
CREATE TABLE videos (
    id           TEXT PRIMARY KEY,
    owner_id     TEXT NOT NULL REFERENCES users (id),
    filename     TEXT NOT NULL,
    size_bytes   BIGINT NOT NULL,
    content_type TEXT,
    status       TEXT NOT NULL,
    task_id      TEXT,
    options      TEXT NOT NULL DEFAULT '{}',
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);

CREATE INDEX videos_owner_created ON videos (owner_id, created_at);
