"""Code shared by the three shop services: JSON logging, the uvicorn runner,
access logging, JSON error handling, trace header handling and the static
collection store behind the REST services."""
