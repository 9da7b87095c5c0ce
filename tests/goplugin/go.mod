module machinetest

go 1.19
