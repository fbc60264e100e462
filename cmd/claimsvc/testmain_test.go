package main

import (
	"os"
	"testing"
)

// TestMain runs claimsvc's main instead of the tests when asMain is set: the
// factory tests run the commands as a factory does, as a process (with exit
// codes, and one killed half way), without building another binary.
func TestMain(m *testing.M) {
	if os.Getenv(asMain) == "1" {
		os.Args = append([]string{"claimsvc"}, os.Args[1:]...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}
