"""What a person reads: the HTML report of a batch (`html`) and the local web app around it (`web`).

This package sits at the evaluation level: it may import `forensics`, `probes`, `exif` and `imageio`, never
`commands` or `cli` (those call it). Heavy libraries (FastAPI, torch) are imported inside the modules that need
them, so importing `exiflang.report` is cheap.
"""
