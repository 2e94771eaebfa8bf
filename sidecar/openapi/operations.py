"""The one place where an endpoint gets its OpenAPI entry: tag, summary, answers, and the
descriptions of its parameters and body keys.

Parameters themselves (names, types, defaults, bounds) and body keys are read from the
handler's source (:mod:`sidecar.openapi.introspect`); an entry only describes them.
``tests/test_openapi.py`` fails when a route has no entry here, when an entry has no route,
and when an entry describes a parameter or a body key its handler does not read.

Adding an endpoint: add one ``"METHOD /path": Op(...)`` line below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

JSON = "application/json"
HTML = "text/html"
TEXT = "text/plain"
GZIP = "application/gzip"
M3U8 = "audio/x-mpegurl"


@dataclass(frozen=True)
class Op:
    tag: str
    summary: str
    #: what the success answer holds
    returns: str = ""
    status: int = 200
    #: other answers: status -> when
    errors: dict[int, str] = field(default_factory=dict)
    #: descriptions of the query parameters the handler reads, by name
    params: dict[str, str] = field(default_factory=dict)
    #: JSON schemas of the body keys the handler reads, by name
    body: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the body takes keys besides those the handler reads by name (described in ``body_note``)
    body_open: bool = False
    body_note: str = ""
    content: str = JSON
    #: the media type of a raw (not JSON) request body, e.g. an uploaded file
    upload: str | None = None
    #: False: reachable without ``API_TOKEN`` even when it is set
    auth: bool = True


_INT = {"type": "integer"}
_STR = {"type": "string"}
_IDS = {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 5000}
_TASK = "202 {task_id, task_type, status}"
_PAGE = "the page (HTML, the shared layout); with API_TOKEN set, the login form until signed in"

OPERATIONS: dict[str, Op] = {
    # health and configuration
    "GET /healthz": Op(
        "health",
        "Health of the database, Redis and the worker",
        "{status: ok|degraded|error, database, redis}",
        errors={503: "the database or Redis cannot be reached"},
        auth=False,
    ),
    "GET /api/health": Op("health", "Same as /healthz (the name AudioMuse-AI plugins call)", auth=False),
    "GET /api/config": Op("config", "The effective configuration, every credential replaced by ***"),
    # tasks
    "GET /api/status/{task_id}": Op(
        "tasks",
        "A task with its children",
        "{task_id, parent_task_id, task_type, status, progress, details, log, children}",
        errors={404: "unknown task"},
        params={"children_limit": "child tasks listed (failed and running first)"},
    ),
    "POST /api/cancel/{task_id}": Op(
        "tasks",
        "Cancel a task and its children",
        "{task_id, status: REVOKED, cancelled}",
        errors={404: "unknown task", 409: "the task is not running"},
    ),
    "GET /api/active_tasks": Op("tasks", "Running top-level tasks"),
    "GET /api/last_task": Op("tasks", "The newest top-level task"),
    # library and analysis
    "POST /api/library/sync": Op(
        "library",
        "Start a library sync",
        _TASK,
        status=202,
        errors={409: "a sync is running"},
        body={"num_recent_albums": {"type": "integer", "minimum": 0}},
    ),
    "GET /api/library/stats": Op("library", "Track counts by analysis status"),
    "GET /api/library/failed": Op(
        "library",
        "Tracks that could not be analysed, with the reasons grouped",
        "{total, start, end, reasons, items}",
        params={"start": "first row", "end": "row after the last (at most 500 a page)"},
    ),
    "POST /api/analysis/start": Op(
        "analysis",
        "Start an analysis run",
        _TASK,
        status=202,
        errors={409: "an analysis is running"},
        body={
            "num_recent_albums": {"type": "integer", "minimum": 0, "description": "0 = all albums"},
            "top_n_moods": {"type": "integer", "minimum": 1, "maximum": 50},
        },
    ),
    # similarity and mixes
    "GET /api/similar_tracks": Op(
        "similarity",
        "Nearest tracks of a song",
        "[{item_id, title, author, album, album_id, distance}] nearest first",
        errors={404: "unknown or not analysed", 503: "nothing analysed yet"},
        params={
            "item_id": "the seed track (or title and artist)",
            "title": "seed title, typo-tolerant",
            "artist": "seed artist",
            "n": "number of tracks",
            "eliminate_duplicates": "drop the same song on other albums and near-identical audio",
            "radius_similarity": "accepted for AudioMuse-AI plugins, ignored",
        },
    ),
    "GET /api/similar_artists": Op(
        "similarity",
        "Artists that sound like an artist",
        "[{artist, artist_id, divergence, component_matches?}]",
        errors={404: "no such artist", 409: "several artists fit"},
        params={"artist": "artist name (typo-tolerant)", "artist_id": "alias of artist"},
    ),
    "GET /api/search_tracks": Op(
        "similarity",
        "Search tracks by title, artist, album",
        "[{item_id, title, author, album, album_id, analyzed}]",
        params={"search_query": "words of the title, artist or album"},
    ),
    "GET /api/search_albums": Op(
        "similarity", "Search albums", "[{album_id, album, artist, tracks, analyzed}]"
    ),
    "GET /api/search_artists": Op("similarity", "Search artists", "[{artist, albums, tracks, analyzed}]"),
    "GET /api/find_path": Op(
        "similarity",
        "A path of songs from one song to another",
        "{path, total_distance, relaxed}",
        params={"max_steps": "songs in the path, both ends included"},
    ),
    "GET /api/mix": Op(
        "similarity",
        "A mix around a song, album, artist, playlist or genre",
        "{kind, seed, resolved, items, relaxed}",
        errors={404: "unknown seed", 409: "the name fits several"},
        params={"kind": "song, album, artist, playlist or genre", "previous": "track ids to leave out"},
    ),
    "POST /api/create_playlist": Op(
        "playlists",
        "Create a playlist on the media server",
        "{playlist_id, name, track_count}",
        status=201,
        errors={409: "a local playlist file in the way was not written by this service"},
        body={"playlist_name": {"type": "string", "minLength": 1, "maxLength": 200}, "track_ids": _IDS},
    ),
    # clustering
    "POST /api/clustering/start": Op(
        "clustering",
        "Start a clustering (automatic playlists)",
        _TASK,
        status=202,
        errors={409: "a clustering is running"},
        body_open=True,
        body_note="any clustering setting by its lower-case name (e.g. clustering_method, "
        "num_clusters_min, clustering_runs, top_n_playlists) and AudioMuse-AI's keys; "
        "a key not sent takes its setting",
    ),
    "GET /api/playlists": Op("clustering", "Automatic playlists of the last clustering"),
    "GET /api/clustering/result": Op(
        "clustering", "The last successful clustering", errors={404: "no clustering has finished yet"}
    ),
    # chat
    "POST /chat/api/chatPlaylist": Op(
        "chat",
        "An instant playlist from a plain-language request (AudioMuse-AI's name)",
        "{response: {message, executed_query, understood_as, query_results}}",
        errors={503: "the read-only chat role is unavailable"},
        body={"userInput": {"type": "string", "maxLength": 2000}, "user_input": _STR},
        body_open=True,
        body_note="AI overrides: ai_provider, ai_model, openai_server_url, openai_api_key, ...",
    ),
    "POST /api/chat/playlist": Op(
        "chat",
        "Same as POST /chat/api/chatPlaylist",
        body={"userInput": {"type": "string", "maxLength": 2000}, "user_input": _STR},
        body_open=True,
        body_note="AI overrides: ai_provider, ai_model, openai_server_url, openai_api_key, ...",
    ),
    "POST /chat/api/create_playlist": Op(
        "chat",
        "Create <playlist_name>_instant on the media server",
        "{message, playlist_id, name, track_count}",
        body={"playlist_name": {"type": "string", "minLength": 1, "maxLength": 190}, "item_ids": _IDS},
    ),
    # music map
    "GET /api/map": Op(
        "map",
        "The 2-D music map of the analysed tracks, packed",
        "{status, computed_at, method, count, ids, xy (base64 uint16 pairs), labels: {mood, genre}}; "
        "a missing or outdated map is queued for computing (status computing)",
    ),
    "POST /api/map/compute": Op("map", "Queue a recomputation of the music map", "{queued}", status=202),
    "GET /api/map/tracks": Op(
        "map",
        "Title, artist and album of map points",
        "[{item_id, title, artist, album}]",
        params={"ids": "track ids (at most 1000)"},
    ),
    # backup, playlists made, metrics
    "GET /api/analysis/export": Op(
        "backup",
        "Download the analysis of the library (gzip JSON lines, streamed)",
        "a .jsonl.gz file: a versioned header, one line per analysed track, an end line",
        content=GZIP,
    ),
    "POST /api/analysis/import": Op(
        "backup",
        "Restore an analysis backup (the file as the body, gzip or plain JSON lines)",
        "a report of the records matched, restored and skipped, by reason",
        errors={409: "another import is running"},
        params={"dry_run": "match and report, change nothing"},
        upload=GZIP,
    ),
    "GET /api/playlists/list": Op(
        "playlists",
        "The playlists this service made (automatic, instant, similar) with their songs",
        "[{playlist_id, name, kind, provider, track_count, missing_tracks, m3u8, songs}]",
    ),
    "GET /api/playlists/{playlist_id}.m3u8": Op(
        "playlists",
        "A playlist this service made, as .m3u8",
        "the playlist file (paths, or stream URLs without credentials)",
        errors={404: "no playlist made by this service has this id"},
        content=M3U8,
    ),
    "DELETE /api/playlists/{playlist_id}": Op(
        "playlists",
        "Delete a playlist this service made (on the media server, then its record)",
        "{deleted, playlist_id, provider_playlist_id, name}",
        errors={
            404: "no playlist made by this service has this id",
            409: "the id is ambiguous, or the playlist is on another media server",
        },
    ),
    "GET /chat/api/config_defaults": Op(
        "chat",
        "Default AI provider, models and URLs for a chat form (never a key)",
    ),
    "GET /metrics": Op("metrics", "Prometheus metrics (text exposition format)", content=TEXT),
    # documentation and pages
    "GET /openapi.json": Op("docs", "This document (OpenAPI 3.1)"),
    "GET /apidocs": Op("pages", "Interactive API documentation", _PAGE, content=HTML),
    "GET /": Op("pages", "Dashboard", _PAGE, content=HTML),
    "GET /analysis": Op("pages", "Analysis & clustering", _PAGE, content=HTML),
    "GET /similarity": Op("pages", "Similar songs", _PAGE, content=HTML),
    "GET /path": Op("pages", "Song path", _PAGE, content=HTML),
    "GET /chat": Op("pages", "Instant playlist", _PAGE, content=HTML),
    "GET /playlists": Op("pages", "Playlists", _PAGE, content=HTML),
    "GET /settings": Op("pages", "Settings (effective configuration, secrets masked)", _PAGE, content=HTML),
    "GET /login": Op("pages", "Sign-in form (when API_TOKEN is set)", content=HTML, auth=False),
    "POST /login": Op(
        "pages", "Sign in: sets the session cookie, then redirects", "303 redirect", status=303, auth=False
    ),
    "POST /logout": Op("pages", "Sign out: clears the session cookie", "{signed_out}"),
    "GET /map": Op("pages", "The music map", _PAGE, content=HTML),
}
