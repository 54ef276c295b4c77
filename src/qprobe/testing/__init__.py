"""Test helpers that ship with qprobe: tiny VLM builders and a local OpenAI-compatible server.

Nothing here downloads anything; heavy imports happen inside functions.
"""
