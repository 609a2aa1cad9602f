"""Media building blocks shared by preprocessing and generation: video, faces, audio."""
