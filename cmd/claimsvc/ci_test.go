package main

import "os"

func getenvCI() bool { return os.Getenv("CI") == "true" }
