package kafkaserver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// PomPath is where the Maven project that pins the Kafka server lives, relative to the
// repository root.
const PomPath = "deploy/kafka/pom.xml"

// FindPom returns the path of deploy/kafka/pom.xml: $ORDERPIPE_KAFKA_POM when set, else the
// first one found walking up from the working directory, then from the running executable's
// directory (bin/orderctl sits next to the repository's deploy/).
func FindPom() (string, error) {
	if p := os.Getenv("ORDERPIPE_KAFKA_POM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("ORDERPIPE_KAFKA_POM: %w", err)
		}
		return filepath.Abs(p)
	}
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		starts = append(starts, filepath.Dir(exe))
	}
	for _, dir := range starts {
		for {
			p := filepath.Join(dir, PomPath)
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", fmt.Errorf("%s not found above the working directory or the executable; set ORDERPIPE_KAFKA_POM", PomPath)
}

// Classpath returns the Java class path of the Kafka server that pom pins, resolved into the
// local Maven repository (~/.m2). The first call on a machine downloads the jars from Maven
// Central (progress goes to logw); later calls resolve offline (mvn -o), and the result is kept
// in the user cache directory, keyed by the pom's content, while every jar on it still exists.
func Classpath(ctx context.Context, pom, mvn string, logw io.Writer) (string, error) {
	if mvn == "" {
		mvn = "mvn"
	}
	content, err := os.ReadFile(pom)
	if err != nil {
		return "", fmt.Errorf("read Kafka pom: %w", err)
	}
	sum := sha256.Sum256(content)
	cacheDir, err := os.UserCacheDir()
	if err != nil {
		cacheDir = os.TempDir()
	}
	cache := filepath.Join(cacheDir, "orderpipe", "kafka-classpath-"+hex.EncodeToString(sum[:8])+".txt")
	if cp, err := os.ReadFile(cache); err == nil && jarsExist(string(cp)) {
		return string(cp), nil
	}
	if _, err := exec.LookPath(mvn); err != nil {
		return "", fmt.Errorf("resolve the Kafka server jars: Maven (%s) not found; install it (Debian: apt-get install maven): %w", mvn, err)
	}
	if err := os.MkdirAll(filepath.Dir(cache), 0o755); err != nil {
		return "", err
	}
	out, err := os.CreateTemp(filepath.Dir(cache), "classpath-*.txt")
	if err != nil {
		return "", err
	}
	out.Close()
	defer os.Remove(out.Name())
	run := func(offline bool) error {
		args := []string{"-B", "-q", "-f", pom, "dependency:build-classpath", "-Dmdep.outputFile=" + out.Name()}
		if offline {
			args = append([]string{"-o"}, args...)
		}
		cmd := exec.CommandContext(ctx, mvn, args...)
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s %s: %w\n%s", mvn, strings.Join(args, " "), err, tail(buf.String(), 2000))
		}
		return nil
	}
	if err := run(true); err != nil {
		fmt.Fprintf(logw, "kafka: resolving the Kafka server jars from Maven Central (first start only; %s)\n", pom)
		if err2 := run(false); err2 != nil {
			return "", fmt.Errorf("resolve the Kafka server jars: %w", err2)
		}
	}
	cp, err := os.ReadFile(out.Name())
	if err != nil {
		return "", err
	}
	if !jarsExist(string(cp)) {
		return "", fmt.Errorf("resolve the Kafka server jars: Maven wrote an empty or stale class path %q", cp)
	}
	if err := os.Rename(out.Name(), cache); err != nil {
		return "", err
	}
	return string(cp), nil
}

func jarsExist(cp string) bool {
	cp = strings.TrimSpace(cp)
	if cp == "" {
		return false
	}
	for _, jar := range filepath.SplitList(cp) {
		if _, err := os.Stat(jar); err != nil {
			return false
		}
	}
	return true
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

var errNoJava = errors.New("java not found; install a JRE 17 or newer (Debian: apt-get install openjdk-17-jre-headless)")
