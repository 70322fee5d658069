"""A plugin module that fails to import (used to test that a broken plugin is skipped)."""

raise RuntimeError("sample plugin broken on purpose")
