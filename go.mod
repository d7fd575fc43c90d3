module github.com/leveling/workshop

go 1.26
