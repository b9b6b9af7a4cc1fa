"""People and departments: users, roles, the departments an SME covers, passwords."""
