"""A reconstruction's result: its file, whom it follows, its footage, people files, the quantities a rig animates."""
