"""Community offers run by VCSE organisations: a directory readable by all staff."""
