"""thpad package."""
