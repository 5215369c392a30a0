"""The files the project reads and writes: results, people files, Live Link CSV takes, safetensors, export formats."""
