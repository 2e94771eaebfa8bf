-- Backup and restore of the analysis (sidecar/backup/): the lookups an import makes to find,
-- in this library, the track a record of the file describes.
--
-- * content fingerprint: analysed tracks carry it in track_analysis.features
--   ('content_fingerprint', sidecar/backup/fingerprint.py), computed when the file is analysed;
-- * path: the file's last three path components (artist/album/file), lower-cased, separators
--   unified, so a library mounted elsewhere (/music vs /srv/media/music) still matches;
-- * tags: tracks.search_text (title, artist, album, lower-cased, accents removed).
CREATE OR REPLACE FUNCTION am_path_tail(path text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    AS $$ SELECT lower(substring(replace(path, E'\\', '/') FROM '([^/]*/[^/]*/[^/]*|[^/]*/[^/]*|[^/]+)$')) $$;
CREATE INDEX IF NOT EXISTS track_analysis_fingerprint_idx ON track_analysis ((features ->> 'content_fingerprint'));
CREATE INDEX IF NOT EXISTS tracks_path_tail_idx ON tracks (am_path_tail(file_path));
CREATE INDEX IF NOT EXISTS tracks_search_text_idx ON tracks (search_text);
