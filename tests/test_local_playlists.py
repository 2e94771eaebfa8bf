"""Playlist files of the local provider (issue #10): never overwrite what is not ours, no name
collisions, one-line names, no writes through planted symlinks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from audio_factory import make_library, make_track

from sidecar.providers import ProviderError, ProviderNotFound
from sidecar.providers.local import LocalProvider

MARKER = "#AUDIOMUSE-SIDECAR"


@pytest.fixture
async def setup(tmp_path: Path) -> tuple[LocalProvider, Path, list[str]]:
    root = tmp_path / "music"
    make_library(root, [{"artist": "A", "album": "B", "tracks": ["x", "y", "z", "w"]}], seconds=0.3)
    p = LocalProvider(root, root / "playlists")
    ids = [t.item_id for a in await p.list_albums() for t in await p.album_tracks(a.id)]
    return p, root / "playlists", ids


def entries(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]


async def test_a_hand_made_playlist_is_never_overwritten(setup) -> None:
    p, folder, ids = setup
    folder.mkdir()
    mine = folder / "My Favourites.m3u8"
    mine.write_text("#EXTM3U\n#PLAYLIST:My Favourites\n../A/B/01 x.flac\n", encoding="utf-8")
    before = mine.read_bytes()
    with pytest.raises(
        ProviderError, match="My Favourites.m3u8 exists and was not written by this service"
    ) as e:
        await p.create_playlist("My Favourites", ids[:2])
    assert e.value.status == 409 and mine.read_bytes() == before
    with pytest.raises(ProviderError) as e:  # not through replace_id either
        await p.create_playlist("My Favourites", ids[:2], replace_id="My Favourites")
    assert e.value.status == 409 and mine.read_bytes() == before
    assert sorted(os.listdir(folder)) == ["My Favourites.m3u8"]  # no temporary file left behind


async def test_names_map_to_distinct_files(setup) -> None:
    p, folder, ids = setup
    made = {}
    for i, name in enumerate(["Rock/Pop", "Rock?Pop", "Rock:Pop", "Rock_Pop", "rock/pop", "..", "x" * 300]):
        made[name] = await p.create_playlist(name, [ids[i % 4]])
    assert len(set(made.values())) == len(made)
    assert made["Rock_Pop"] == "Rock_Pop"  # a name that is a fine file name is the file name
    assert await p.create_playlist("My mix (2024)", ids[:1]) == "My mix (2024)"
    for i, (name, pid) in enumerate(made.items()):
        path = folder / f"{pid}.m3u8"
        assert "/" not in pid and not pid.startswith(".") and len(path.name.encode()) < 200
        lines = path.read_text(encoding="utf-8").splitlines()
        assert lines[:3] == ["#EXTM3U", MARKER, f"#PLAYLIST:{name}"]
        assert (
            len(entries(path)) == 1
            and (folder / entries(path)[0]).resolve()
            == Path((await p.get_tracks([ids[i % 4]]))[0].file_path or "").resolve()
        )


@pytest.mark.parametrize(
    "name", ["two\nlines", "cr\rhere", "tab\there", "nul\x00", "ls\u2028x", "\x85nel", " "]
)
async def test_a_name_is_one_line(setup, name: str) -> None:
    p, folder, ids = setup
    with pytest.raises(ProviderError) as e:
        await p.create_playlist(name, ids[:1])
    assert e.value.status == 400
    assert not folder.exists() or os.listdir(folder) == []


async def test_planted_symlinks_are_not_followed(
    setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sidecar.providers import local_playlists

    p, folder, ids = setup
    folder.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (folder / "Mix.m3u8.tmp").symlink_to(victim)  # the old temporary name
    (folder / ".Mix.m3u8.tmp").symlink_to(victim)
    pid = await p.create_playlist("Mix", ids[:2])
    assert pid == "Mix" and entries(folder / "Mix.m3u8") and victim.read_text() == "precious\n"
    # a symlink at the target is not ours: conflict, the link and its target stay
    (folder / "Evil.m3u8").symlink_to(victim)
    with pytest.raises(ProviderError, match="Evil.m3u8 exists and was not written") as e:
        await p.create_playlist("Evil", ids[:2])
    assert (
        e.value.status == 409 and (folder / "Evil.m3u8").is_symlink() and victim.read_text() == "precious\n"
    )
    # even a symlink to a playlist of ours is not replaced (the write would land elsewhere)
    (folder / "Alias.m3u8").symlink_to(folder / "Mix.m3u8")
    with pytest.raises(ProviderError):
        await p.create_playlist("Alias", ids[:1])
    # a symlink at the (guessed) temporary name: the exclusive create refuses it
    monkeypatch.setattr(local_playlists.secrets, "token_hex", lambda n: "0" * (2 * n))
    (folder / f".Guess.{'0' * 16}.tmp").symlink_to(victim)
    with pytest.raises(ProviderError, match="File exists"):
        await p.create_playlist("Guess", ids[:1])
    assert victim.read_text() == "precious\n" and not (folder / "Guess.m3u8").exists()


async def test_a_folder_in_the_way_is_a_conflict(setup) -> None:
    p, folder, ids = setup
    (folder / "Dir.m3u8").mkdir(parents=True)
    with pytest.raises(ProviderError) as e:
        await p.create_playlist("Dir", ids[:1])
    assert e.value.status == 409 and (folder / "Dir.m3u8").is_dir()


async def test_replace_id_replaces_only_our_file_for_that_name(setup) -> None:
    p, folder, ids = setup
    pid = await p.create_playlist("Night / Drive", ids[:3])
    assert await p.create_playlist("Night / Drive", [ids[3]], replace_id=pid) == pid
    assert len(entries(folder / f"{pid}.m3u8")) == 1
    # without replace_id (e.g. a new database) our own file for the same name is replaced too
    assert await p.create_playlist("Night / Drive", ids[:2]) == pid
    assert len(entries(folder / f"{pid}.m3u8")) == 2
    # a replace_id naming a hand-made file or another playlist: left alone, the name's own file is used
    (folder / "Hand made.m3u8").write_text("#EXTM3U\nsong.flac\n")
    other = await p.create_playlist("Other", ids[:1])
    assert await p.create_playlist("Fresh", ids[:2], replace_id="Hand made") == "Fresh"
    assert await p.create_playlist("Fresh 2", ids[:2], replace_id=other) == "Fresh 2"
    assert (folder / "Hand made.m3u8").read_text() == "#EXTM3U\nsong.flac\n"
    assert len(entries(folder / f"{other}.m3u8")) == 1
    for bad in ("../../etc/passwd", ".hidden", "a/b", "line\nbreak"):  # never a path outside the folder
        assert await p.create_playlist("Safe", ids[:1], replace_id=bad) == "Safe"


async def test_same_file_name_for_another_name_is_a_conflict(setup) -> None:
    p, folder, ids = setup
    pid = await p.create_playlist("Rock/Pop", ids[:1])
    # a name that is exactly the other one's file stem (astronomically unlikely by chance)
    with pytest.raises(ProviderError, match="holds the playlist 'Rock/Pop'") as e:
        await p.create_playlist(pid, ids[:2])
    assert e.value.status == 409 and len(entries(folder / f"{pid}.m3u8")) == 1


async def test_duplicates_are_written_once_in_order(setup) -> None:
    p, folder, ids = setup
    pid = await p.create_playlist("Dups", [ids[2], ids[0], ids[2], ids[1], ids[0]])
    tracks = {t.item_id: t for t in await p.get_tracks(ids)}
    assert [(folder / e).resolve() for e in entries(folder / f"{pid}.m3u8")] == [
        Path(tracks[i].file_path or "").resolve() for i in (ids[2], ids[0], ids[1])
    ]
    with pytest.raises(ProviderNotFound):
        await p.create_playlist("Dups", [ids[0], "nope"])


async def test_labels_and_paths_cannot_inject_lines(tmp_path: Path) -> None:
    root = tmp_path / "music"
    make_track(root / "a.flac", seconds=0.3, title="Evil\n#EXTINF:1,x\n/etc/passwd", artist="Me\rYou")
    make_track(root / "b.flac", seconds=0.3, title="Fine")
    os.rename(root / "b.flac", root / "new\nline.flac")
    p = LocalProvider(root, root / "playlists")
    tracks = {t.title: t for a in await p.list_albums() for t in await p.album_tracks(a.id)}
    pid = await p.create_playlist("Labels", [tracks["Evil\n#EXTINF:1,x\n/etc/passwd"].item_id])
    lines = (root / "playlists" / f"{pid}.m3u8").read_text().splitlines()
    assert len(lines) == 5 and lines[-1] == "../a.flac" and lines[3].startswith("#EXTINF:0,Me You - Evil ")
    with pytest.raises(ProviderError, match="holds a line break") as e:
        await p.create_playlist("Paths", [tracks["Fine"].item_id])
    assert e.value.status == 422 and not (root / "playlists" / "Paths.m3u8").exists()
