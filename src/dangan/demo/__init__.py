"""Demo fonds: a few hundred records with real files, Chinese titles, three departments, several years."""
