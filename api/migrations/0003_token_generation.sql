-- Each token carries its user's generation (claim `gen`); a password change, a reset or a disable
-- adds one, so every token issued before stops working at once, whatever the second it was
-- issued in (`iat` has one-second resolution; a counter has no such ambiguity). Tokens issued
-- before this column existed carry no `gen` and read as 0: they keep working until they expire
-- or the user's generation moves.
ALTER TABLE users ADD COLUMN token_generation BIGINT NOT NULL DEFAULT 0;
