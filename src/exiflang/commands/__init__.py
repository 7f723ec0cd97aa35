"""Sub-commands of the `exiflang` CLI; see `exiflang.cli` for the registry and conventions."""
