-- Signed webhooks (api/src/webhooks). Portable SQL, as 0001.
-- A video's callback URL (its upload's `callback_url`); NULL: its owner's default, if any.
ALTER TABLE videos ADD COLUMN callback_url TEXT;
-- Each user's default callback URL, and the secret their notifications are signed with
-- (created on first use, rotated on request).
ALTER TABLE users ADD COLUMN webhook_url TEXT;
ALTER TABLE users ADD COLUMN webhook_secret TEXT;

-- One notification: a run of a video that reached a final status, to one URL. The body is kept
-- so that every attempt sends the same bytes; (job_id, run_id, event) makes a second writer's
-- insert a no-op, so a run is announced once whichever replica records its end.
CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    -- The job notified about: a video (later also a collection), by id.
    job_id          TEXT NOT NULL,
    owner_id        TEXT NOT NULL,
    run_id          TEXT NOT NULL,
    event           TEXT NOT NULL,
    url             TEXT NOT NULL,
    body            TEXT NOT NULL,
    -- pending (an attempt is due), sending (one is under way), delivered, failed (gave up).
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    UNIQUE (job_id, run_id, event)
);
CREATE INDEX webhook_deliveries_job ON webhook_deliveries (job_id, created_at);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);

-- Each attempt, for the delivery log.
CREATE TABLE webhook_attempts (
    delivery_id TEXT NOT NULL,
    attempt     BIGINT NOT NULL,
    started_at  TEXT NOT NULL,
    duration_ms BIGINT NOT NULL,
    -- The receiver's HTTP status; NULL when none came (refused, unreachable, timed out).
    status_code BIGINT,
    error       TEXT,
    PRIMARY KEY (delivery_id, attempt)
);
