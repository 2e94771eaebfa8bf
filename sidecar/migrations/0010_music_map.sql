-- music_map: the 2-D map of the analysed tracks (one row), computed by the worker's
-- compute_map job and served by GET /api/map; `signature` is the library's state it was
-- computed from (a different one means the map is outdated).
CREATE TABLE IF NOT EXISTS music_map (
    id           smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    signature    text NOT NULL,
    method       text NOT NULL,
    computed_at  timestamptz NOT NULL DEFAULT now(),
    seconds      real NOT NULL,
    item_ids     text[] NOT NULL,
    xy           bytea NOT NULL,
    mood_names   text[] NOT NULL,
    mood_idx     bytea NOT NULL,
    genre_names  text[] NOT NULL,
    genre_idx    bytea NOT NULL
);
COMMENT ON TABLE music_map IS 'The 2-D music map of the analysed tracks (uint16 x,y pairs, label indices), with the library signature it was computed from.';
