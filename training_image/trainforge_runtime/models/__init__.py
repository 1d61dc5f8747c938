"""Small reference models that know how to split themselves for every layout."""
