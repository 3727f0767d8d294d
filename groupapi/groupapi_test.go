package groupapi

import (
	"strings"
	"testing"
)

func TestParseFingerprint(t *testing.T) {
	fp := strings.Repeat("AB:", 31) + "CD"
	for _, s := range []string{fp, strings.ToLower(fp), strings.ReplaceAll(fp, ":", ""), " " + fp + "\n"} {
		b, err := ParseFingerprint(s)
		if err != nil || len(b) != 32 || b[31] != 0xcd {
			t.Errorf("%q: %x, %v", s, b, err)
		}
	}
	for _, s := range []string{"", "AB:CD", strings.Repeat("ZZ", 32), fp + ":EF"} {
		if _, err := ParseFingerprint(s); err == nil {
			t.Errorf("%q was accepted", s)
		}
	}
}

func TestPageMapOwner(t *testing.T) {
	m := PageMap{PageSize: 1 << 20, Size: 5 << 20, Members: []int{2, 1}}
	for page, want := range []int{2, 1, 2, 1, 2} {
		if got := m.Owner(int64(page)); got != want {
			t.Errorf("page %d: member %d, want %d", page, got, want)
		}
		if got := m.OwnerAt(int64(page)<<20 + 5); got != want {
			t.Errorf("offset in page %d: member %d, want %d", page, got, want)
		}
	}
	if (PageMap{}).OwnerAt(0) != 0 {
		t.Error("an empty map names an owner")
	}
}
