-- Keys and header values are bytes, whatever they hold: key_bytes and header_names /
-- header_values keep them exactly (key and headers stay as readable text, NULL or hex where
-- the bytes are not text). nul_escaped: a string of the decoded data held a NUL character,
-- written as the text \u0000 in data (jsonb cannot hold NUL; raw has the original).
ALTER TABLE events ADD COLUMN key_bytes bytea;
ALTER TABLE events ADD COLUMN header_names bytea[];
ALTER TABLE events ADD COLUMN header_values bytea[];
ALTER TABLE events ADD COLUMN nul_escaped boolean NOT NULL DEFAULT false;
UPDATE events SET key_bytes = convert_to(key, 'UTF8') WHERE key IS NOT NULL;
