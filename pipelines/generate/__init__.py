"""Generation: a photo and a speech clip in, a talking-head video out (inputs, streaming writer, the job)."""
