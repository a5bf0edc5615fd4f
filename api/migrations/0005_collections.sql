-- Photo collections (api/src/collections). Portable SQL, as 0001. The live state is the result
-- backend's, as a video's; this row is who owns the collection, what came in, and its last
-- known status.
CREATE TABLE collections (
    id           TEXT PRIMARY KEY,
    owner_id     TEXT NOT NULL REFERENCES users (id),
    status       TEXT NOT NULL,
    task_id      TEXT,
    options      TEXT NOT NULL DEFAULT '{}',
    -- Photos stored, entries refused on the way in, bytes stored.
    photos       BIGINT NOT NULL,
    refused      BIGINT NOT NULL,
    size_bytes   BIGINT NOT NULL,
    error        TEXT,
    callback_url TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    finished_at  TEXT
);
CREATE INDEX collections_owner_created ON collections (owner_id, created_at);
