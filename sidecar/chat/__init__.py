"""Instant playlists from a plain-language request.

``columns``: the ``chat.chat_tracks`` view's columns.  ``validate``: an LLM's answer proven to be
one safe read of that view before it runs.  ``prompt``: the SQL-writing prompt.  ``rules``: the
request understood without any LLM.  ``service``: attempts, fallback and the answer.
"""
