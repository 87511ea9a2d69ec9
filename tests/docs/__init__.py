"""Tests of the documentation site as a reader gets it: built, served and opened in a browser."""
