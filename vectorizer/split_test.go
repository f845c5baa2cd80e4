package vectorizer

import (
	"reflect"
	"testing"
)

func TestSplitByLength(t *testing.T) {
	// One long text and many short ones: the long one goes alone.
	lengths := []int{128, 20, 20, 20, 20, 20, 20, 20, 20, 20}
	if got := splitByLength(lengths, 32, 160); !reflect.DeepEqual(got, [][2]int{{0, 1}, {1, 10}}) {
		t.Fatalf("split %v", got)
	}
	// Similar lengths stay together, up to the batch limit.
	same := []int{40, 40, 39, 39, 38}
	if got := splitByLength(same, 32, 160); !reflect.DeepEqual(got, [][2]int{{0, 5}}) {
		t.Fatalf("split %v", got)
	}
	if got := splitByLength(same, 2, 160); !reflect.DeepEqual(got, [][2]int{{0, 2}, {2, 4}, {4, 5}}) {
		t.Fatalf("split with batch 2: %v", got)
	}
	if got := splitByLength(nil, 32, 160); len(got) != 0 {
		t.Fatalf("split of nothing: %v", got)
	}
}
