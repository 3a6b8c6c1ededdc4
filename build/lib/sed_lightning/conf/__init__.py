"""The built-in Hydra configs (shipped in the wheel; a Hydra search path adds a user's own)."""
