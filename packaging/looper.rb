# Homebrew formula for Looper, built from the tagged source tarball.
#
# RELEASE.md says how to update it: `scripts/release --dist` writes the source tarball
# (git archive of the tag) and its sha256; put the tag's URL and that sha256 below.
class Looper < Formula
  desc "Strict, auditable loop that drives AI coding-agent CLIs through a JSON backlog"
  homepage "https://github.com/looper-cli/looper"
  url "https://github.com/looper-cli/looper/archive/refs/tags/v0.1.0.tar.gz"
  sha256 "0000000000000000000000000000000000000000000000000000000000000000"
  license "MIT"
  head "https://github.com/looper-cli/looper.git", branch: "main"

  depends_on "rust" => :build

  def install
    # std_cargo_args: --locked --root #{prefix} --path .
    system "cargo", "install", *std_cargo_args
    generate_completions_from_executable(bin/"looper", "completions")
    (man1/"looper.1").write Utils.safe_popen_read(bin/"looper", "man")
  end

  test do
    assert_match version.to_s, shell_output("#{bin}/looper --version")
    # The whole loop, offline, with the built-in demo agent: it must end reviewed and done.
    ENV["LOOPER_HOME"] = testpath/"looper-home"
    output = shell_output("#{bin}/looper demo --dir #{testpath}/demo 2>&1")
    assert_match "the review declared the project done", output
    assert_path_exists testpath/"demo/CHANGES.md"
  end
end
