"""Template rendering in worker processes, bounded in time, output and memory."""
