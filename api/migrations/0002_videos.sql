-- What the video endpoints keep beyond the first slice's columns: the probe's findings, and
-- how a run ended (copied from the result backend, whose state expires after a week, while the
-- row lives until the video is deleted). Portable SQL, as 0001.

ALTER TABLE videos ADD COLUMN video_info TEXT;
ALTER TABLE videos ADD COLUMN error TEXT;
ALTER TABLE videos ADD COLUMN finished_at TEXT;

-- Admins list every video, newest first; metrics count videos by status.
CREATE INDEX videos_created ON videos (created_at);
CREATE INDEX videos_status ON videos (status);
