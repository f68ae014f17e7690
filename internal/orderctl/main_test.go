package orderctl_test

import (
	"testing"

	"github.com/orderpipe/orderpipe/internal/testenv"
)

// TestMain stops the package's real Kafka node (testenv.RealKafka) after the tests.
func TestMain(m *testing.M) { testenv.RealKafkaMain(m) }
