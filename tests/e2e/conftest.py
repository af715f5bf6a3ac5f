"""End-to-end tests: ``import terminal`` (the pty harness) from this directory."""

from __future__ import annotations


