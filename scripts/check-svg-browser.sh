#!/usr/bin/env bash
# Proves in a real headless browser (Debian's Chromium, driven by playwright-core) that the flame
# graph SVG written by stacksample renders, that inferno's search, zoom and tooltips work in it, and
# that the first screen of a deep profile (Debian's python3 running imports and a 60-deep recursion)
# shows the title and the hottest function, with no label cut to a stub.
#
#   scripts/check-svg-browser.sh
#
# Installs, if missing: chromium (Debian, as root) and playwright-core (npm, into a scratch dir
# removed on exit; no browser download). Needs cargo, cc, node, npm and /usr/bin/python3.
# SVG_CHECK_SCREENSHOT=path.png sets where the screenshot of the rendered graph goes (default: the
# scratch dir, kept); screenshots after the search and after the zoom are written beside it as
# *-search.png and *-zoom.png, and the deep profile's first screen (1280x800, not scrolled) as
# *-first-screen.png.
# SVG_CHECK_LIBRARY=path/libstacksample.so checks the graphs that library writes instead of
# building one (for example an older build, to see what the check catches).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
scratch=$(mktemp -d /tmp/check-svg-browser.XXXXXX)
keep_dir=
cleanup() {
    if [[ -n $keep_dir ]]; then
        # Keep only the default screenshots; drop everything else.
        find "$scratch" -mindepth 1 -maxdepth 1 ! -name 'flamegraph*.png' -exec rm -rf {} +
    else
        rm -rf "$scratch"
    fi
}
trap cleanup EXIT

fail() {
    echo "svg browser check: FAILED: $*" >&2
    exit 1
}

chromium_bin=/usr/bin/chromium

# --- tools -------------------------------------------------------------------------------------
[[ -x /usr/bin/python3 ]] || fail "/usr/bin/python3 is not installed"
for tool in cargo cc node npm; do
    command -v "$tool" >/dev/null || fail "'$tool' is not installed"
done
if [[ ! -x $chromium_bin ]]; then
    echo "installing chromium from Debian"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >"$scratch/apt.log" 2>&1 ||
        { tail -20 "$scratch/apt.log" >&2; fail "apt-get install chromium failed"; }
fi
"$chromium_bin" --version 2>/dev/null | grep -q Chromium || fail "$chromium_bin does not run"

echo "installing playwright-core from npm into $scratch"
mkdir -p "$scratch/node"
(cd "$scratch/node" && npm init -y >/dev/null &&
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --loglevel=error \
        playwright-core@1 >"$scratch/npm.log" 2>&1) ||
    { cat "$scratch/npm.log" >&2; fail "npm install playwright-core failed"; }

# --- profile -----------------------------------------------------------------------------------
if [[ -n ${SVG_CHECK_LIBRARY:-} ]]; then
    lib=$SVG_CHECK_LIBRARY
else
    echo "building libstacksample.so"
    (cd "$root" && cargo build --release --quiet --lib)
    lib=${CARGO_TARGET_DIR:-$root/target}/release/libstacksample.so
fi
[[ -f $lib ]] || fail "$lib was not built"
echo "building the hot.c fixture"
cc -O2 -g -o "$scratch/hot" "$root/preload-test/programs/hot.c"

echo "profiling ./hot 4000 at 1 kHz"
mkdir -p "$scratch/out"
LD_PRELOAD=$lib STACKSAMPLE_INTERVAL=1ms STACKSAMPLE_OUTPUT=$scratch/out/prof \
    "$scratch/hot" 4000 >/dev/null
svg=$scratch/out/prof.svg
[[ -s $svg ]] || fail "no SVG written at $svg"
# The check below calls the functions of inferno's embedded script; make sure they are there.
for fn in 'function init(' 'function search(' 'function search_prompt(' 'function zoom('; do
    grep -qF "$fn" "$svg" || fail "the SVG's script has no '$fn'"
done

deep_program=$root/preload-test/programs/deep_imports.py
echo "profiling /usr/bin/python3 $deep_program at 1 kHz"
LD_PRELOAD=$lib STACKSAMPLE_INTERVAL=1ms STACKSAMPLE_OUTPUT=$scratch/out/deep \
    /usr/bin/python3 "$deep_program" >/dev/null
deep_svg=$scratch/out/deep.svg
[[ -s $deep_svg ]] || fail "no SVG written at $deep_svg"
# The hottest function: the leaf of the most samples, summed over its stacks (a line is
# "stack count"; names may hold spaces).
hottest=$(awk '{ n = split(substr($0, 1, length($0) - length($NF) - 1), f, ";"); self[f[n]] += $NF }
               END { for (name in self) print self[name] "\t" name }' "$scratch/out/deep.folded" |
    sort -t$'\t' -k1,1nr | head -1)
[[ -n $hottest ]] || fail "the deep profile's folded stacks are empty"
hottest_name=${hottest#*$'\t'}
echo "hottest function of the deep profile: $hottest_name (${hottest%%$'\t'*} samples as leaf)"

if [[ -n ${SVG_CHECK_SCREENSHOT:-} ]]; then
    shot=$SVG_CHECK_SCREENSHOT
    mkdir -p "$(dirname "$shot")"
else
    shot=$scratch/flamegraph.png
    keep_dir=1
fi

# --- browser -----------------------------------------------------------------------------------
cat >"$scratch/node/common.js" <<'EOF'
// What both checks share: a failed check, and a page at `viewport` with the graph rendered.
const { chromium } = require('playwright-core');
const path = require('path');

class CheckError extends Error {}
function check(cond, msg) {
  if (!cond) throw new CheckError(msg);
}

// Opens `svgPath` in headless Chromium, waits for inferno's init() and its relayout, runs
// `body(page)`, and fails on any error the page reported.
async function withGraph(svgPath, chromiumBin, profileDir, viewport, body) {
  const browser = await chromium.launch({
    executablePath: chromiumBin,
    headless: true,
    // playwright adds --headless and a fresh --user-data-dir (a temporary profile under TMPDIR);
    // the rest are the ones that work on this machine as root.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync',
           '--disable-dev-shm-usage'],
    env: { ...process.env, HOME: profileDir, XDG_CONFIG_HOME: profileDir, XDG_CACHE_HOME: profileDir },
  });
  const errors = [];
  try {
    const page = await browser.newPage({ viewport });
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    await page.goto('file://' + path.resolve(svgPath), { waitUntil: 'load' });
    // inferno's onload init() sets the global total_samples and lays out the labels.
    await page.waitForFunction(() => typeof total_samples === 'number' && total_samples > 0,
                               null, { timeout: 10000 })
      .catch(() => { throw new CheckError('inferno init() never ran (total_samples unset)'); });
    await page.waitForTimeout(200); // fluid drawing relayout runs from a setTimeout(0)
    await body(page);
    check(errors.length === 0, `the page reported errors:\n  ${errors.join('\n  ')}`);
  } finally {
    await browser.close();
  }
}

// Runs `main`, printing a failed check's message (else the stack) and exiting 1 on failure.
function run(main) {
  main().catch((e) => {
    console.error(e instanceof CheckError ? e.message : (e.stack || String(e)));
    process.exit(1);
  });
}

module.exports = { check, withGraph, run };
EOF

cat >"$scratch/node/check.js" <<'EOF'
const { check, withGraph, run } = require('./common');
const [svgPath, shot, chromiumBin, profileDir] = process.argv.slice(2);
const shotBase = shot.replace(/\.png$/i, '');

run(() => withGraph(svgPath, chromiumBin, profileDir, { width: 1200, height: 300 }, async (page) => {

  // Helpers evaluated in the page: a frame is a <g> under #frames with <title> and <rect>.
  const frameInfo = (name) => page.evaluate((name) => {
    const out = [];
    for (const g of document.querySelectorAll('#frames > g')) {
      const title = g.querySelector('title');
      if (!title || !new RegExp('^' + name + ' \\(').test(title.textContent)) continue;
      const rect = g.querySelector('rect');
      const text = g.querySelector('text');
      const box = rect.getBoundingClientRect();
      out.push({
        title: title.textContent,
        fill: rect.getAttribute('fill'),
        widthAttr: rect.getAttribute('width'),
        boxWidth: box.width,
        displayed: getComputedStyle(g).display !== 'none',
        classes: g.getAttribute('class') || '',
        label: text ? text.textContent : '',
      });
    }
    return out;
  }, name);
  // A CSS selector for the rect of the first frame titled `name`.
  const rectOf = async (name) => {
    const n = await page.evaluate((name) => {
      const gs = [...document.getElementById('frames').children];
      const i = gs.findIndex((g) => {
        const t = g.querySelector('title');
        return t && new RegExp('^' + name + ' \\(').test(t.textContent);
      });
      return i + 1;
    }, name);
    check(n > 0, `no frame titled ${name}`);
    return `#frames > :nth-child(${n}) > rect`;
  };
  const framesWidth = () => page.evaluate(
    () => document.getElementById('frames').getBoundingClientRect().width);

  // 1. Rendering.
  const doc = await page.evaluate(() => ({
    root: document.documentElement.tagName,
    frames: document.querySelectorAll('#frames > g').length,
    framesWithTitleAndRect: [...document.querySelectorAll('#frames > g')]
      .filter((g) => g.querySelector('title') && g.querySelector('rect')).length,
    title: (document.getElementById('title') || {}).textContent,
  }));
  check(doc.root === 'svg', `document root is <${doc.root}>, not <svg>`);
  check(doc.frames >= 10, `only ${doc.frames} frame <g> elements under #frames (expected >= 10)`);
  check(doc.framesWithTitleAndRect === doc.frames,
        `${doc.frames - doc.framesWithTitleAndRect} frames lack a <title> or <rect>`);
  const fullWidth = await framesWidth();
  check(fullWidth > 500, `#frames is only ${fullWidth}px wide`);
  const hotA = await frameInfo('hot_a');
  check(hotA.length >= 1, 'no frame titled hot_a');
  check(hotA[0].boxWidth > 0, `the hot_a frame renders ${hotA[0].boxWidth}px wide`);
  check(hotA[0].label.includes('hot_a'), `the hot_a frame's label is '${hotA[0].label}'`);
  for (const fn of ['main', 'level1_a', 'level1_b', 'level1_c', 'hot_b', 'hot_c', 'burn'])
    check((await frameInfo(fn)).length >= 1, `no frame titled ${fn}`);
  console.log(`rendered: ${doc.frames} frames, #frames ${fullWidth.toFixed(0)}px wide, ` +
              `hot_a ${hotA[0].boxWidth.toFixed(0)}px ("${hotA[0].title}")`);

  // Tooltip: hovering a frame shows "Function: <title>" in the details line.
  await page.hover(await rectOf('hot_a'));
  const details = await page.evaluate(() => document.getElementById('details').textContent);
  check(details === 'Function: ' + hotA[0].title,
        `hovering hot_a shows details '${details}', expected 'Function: ${hotA[0].title}'`);
  await page.mouse.move(0, 0);
  await page.screenshot({ path: shot });

  // 2. Search, through the real UI: click "Search", answer the prompt with hot_b.
  page.once('dialog', (d) => d.accept('hot_b'));
  await page.click('#search');
  const searchColor = await page.evaluate(() => searchcolor);
  const hotB = await frameInfo('hot_b');
  for (const f of hotB)
    check(f.fill === searchColor,
          `search hot_b: frame '${f.title}' has fill ${f.fill}, not the highlight ${searchColor}`);
  for (const fn of ['hot_a', 'hot_c', 'main', 'level1_b'])
    for (const f of await frameInfo(fn))
      check(f.fill !== searchColor, `search hot_b: unrelated frame '${f.title}' is highlighted`);
  const matched = await page.evaluate(() => {
    const m = document.getElementById('matched');
    return { text: m.textContent, hidden: m.classList.contains('hide') };
  });
  const pct = /^Matched: ([0-9.]+)%$/.exec(matched.text);
  check(!matched.hidden && pct, `search hot_b: matched text is '${matched.text}'`);
  const expected = parseFloat(/([0-9.]+)%\)$/.exec(hotB[0].title)[1]);
  check(Math.abs(parseFloat(pct[1]) - expected) < 0.2,
        `search hot_b: matched ${pct[1]}% but the hot_b frame's title says ${expected}%`);
  const button = await page.evaluate(() => document.getElementById('search').textContent);
  check(button === 'Reset Search', `after a search the button reads '${button}'`);
  console.log(`search: ${hotB.length} hot_b frame(s) filled ${searchColor}, '${matched.text}'`);
  await page.screenshot({ path: shotBase + '-search.png' });
  await page.click('#search'); // "Reset Search"
  for (const f of await frameInfo('hot_b'))
    check(f.fill !== searchColor, `reset search: '${f.title}' is still highlighted`);

  // 3. Zoom: a real mouse click on the level1_a frame.
  await page.click(await rectOf('level1_a'));
  const widthNow = await framesWidth();
  const l1a = (await frameInfo('level1_a'))[0];
  check(l1a.displayed && l1a.boxWidth >= 0.98 * widthNow,
        `zoom level1_a: its frame is ${l1a.boxWidth.toFixed(1)}px of ${widthNow.toFixed(1)}px ` +
        `(width attribute ${l1a.widthAttr})`);
  const hotAZ = (await frameInfo('hot_a'))[0];
  check(hotAZ.displayed && hotAZ.boxWidth >= 0.98 * widthNow,
        `zoom level1_a: its child hot_a is ${hotAZ.boxWidth.toFixed(1)}px of ${widthNow.toFixed(1)}px`);
  for (const fn of ['level1_b', 'level1_c', 'hot_b', 'hot_c'])
    for (const f of await frameInfo(fn))
      check(!f.displayed || f.boxWidth < 0.5,
            `zoom level1_a: '${f.title}' is still shown, ${f.boxWidth.toFixed(1)}px wide`);
  const mainF = (await frameInfo('main'))[0];
  check(mainF.classes.includes('parent'), `zoom level1_a: main is not marked as a parent`);
  const unzoomShown = await page.evaluate(
    () => !document.getElementById('unzoom').classList.contains('hide'));
  check(unzoomShown, 'zoom level1_a: the Reset Zoom button is not shown');
  console.log(`zoom: level1_a ${l1a.boxWidth.toFixed(0)}px of ${widthNow.toFixed(0)}px, ` +
              `level1_c hidden`);
  await page.screenshot({ path: shotBase + '-zoom.png' });

  // Reset Zoom restores the original widths.
  await page.click('#unzoom');
  const l1c = (await frameInfo('level1_c'))[0];
  check(l1c.displayed && l1c.boxWidth > 0, 'Reset Zoom: level1_c did not come back');

}));
EOF

cat >"$scratch/node/first-screen.js" <<'EOF'
const { check, withGraph, run } = require('./common');
// The first screen of a deep profile, as a laptop browser opens it: 1280x800, not scrolled.
const [svgPath, shot, chromiumBin, profileDir, hottest] = process.argv.slice(2);
// A cut label keeps at least this many characters of the name (src/output/svg.rs).
const MIN_LABEL_CHARS = 6;
const VIEW = { width: 1280, height: 800 };

run(() => withGraph(svgPath, chromiumBin, profileDir, VIEW, async (page) => {
  await page.screenshot({ path: shot }); // the viewport only: what the first screen shows

  const seen = await page.evaluate(({ hottest, minChars }) => {
    const box = (e) => {
      const b = e.getBoundingClientRect();
      return { top: b.top, bottom: b.bottom, left: b.left, right: b.right, width: b.width };
    };
    const title = document.getElementById('title');
    // The hottest function's widest frame: where most of its samples are drawn.
    let widest = null;
    for (const g of document.querySelectorAll('#frames > g')) {
      if (!g.querySelector('title').textContent.startsWith(hottest + ' (')) continue;
      const samples = parseInt(g.querySelector('rect').getAttribute('fg:w'));
      if (!widest || samples > widest.samples) widest = { g, samples };
    }
    const labels = [...document.querySelectorAll('#frames > g > text')].map((t) => t.textContent);
    return {
      scrollY: window.scrollY,
      height: document.documentElement.getBoundingClientRect().height,
      title: title && { text: title.textContent, box: box(title) },
      frame: widest && {
        title: widest.g.querySelector('title').textContent,
        rect: box(widest.g.querySelector('rect')),
        label: widest.g.querySelector('text').textContent,
        labelBox: box(widest.g.querySelector('text')),
      },
      stubs: labels.filter((l) => (l.startsWith('..') || l.endsWith('..')) &&
                                  l.length < minChars + 2),
      labels: labels.filter((l) => l !== '').length,
    };
  }, { hottest, minChars: MIN_LABEL_CHARS });
  const inView = (b) => b.width > 0 && b.top >= 0 && b.left >= 0 &&
                        b.bottom <= VIEW.height && b.right <= VIEW.width;
  const where = (b) => `x ${b.left.toFixed(0)}..${b.right.toFixed(0)}, ` +
                       `y ${b.top.toFixed(0)}..${b.bottom.toFixed(0)}`;
  check(seen.scrollY === 0, `the page opened scrolled to ${seen.scrollY}px`);
  check(seen.title && seen.title.text, 'the graph has no title');
  check(inView(seen.title.box), `the title '${seen.title.text}' is at ${where(seen.title.box)}, ` +
        'outside the first screen (1280x800)');
  check(seen.frame, `no frame titled ${hottest}`);
  check(inView(seen.frame.rect), `the hottest function's widest frame '${seen.frame.title}' is at ` +
        `${where(seen.frame.rect)} of a ${seen.height.toFixed(0)}px tall graph, outside the ` +
        'first screen (1280x800)');
  // inferno's script keeps the space before the title's "(N samples...)".
  check(seen.frame.label.trim() === hottest && inView(seen.frame.labelBox),
        `the hottest function's widest frame is labelled '${seen.frame.label}', not '${hottest}'`);
  check(seen.stubs.length === 0, `${seen.stubs.length} labels are cut to stubs, e.g. ` +
        seen.stubs.slice(0, 5).map((s) => `'${s}'`).join(', '));
  console.log(`first screen: graph ${seen.height.toFixed(0)}px tall; title at ` +
              `${where(seen.title.box)}; '${seen.frame.title}' at ${where(seen.frame.rect)}; ` +
              `${seen.labels} labels, none a stub`);

  // Tooltip and zoom work in this layout too: hover, then click the hottest frame.
  const r = seen.frame.rect;
  const [x, y] = [(r.left + r.right) / 2, (r.top + r.bottom) / 2];
  await page.mouse.move(x, y);
  const details = await page.evaluate(() => document.getElementById('details').textContent);
  check(details === 'Function: ' + seen.frame.title,
        `hovering ${hottest} shows details '${details}'`);
  await page.mouse.click(x, y);
  const zoomed = await page.evaluate((t) => {
    const g = [...document.querySelectorAll('#frames > g')]
      .find((g) => g.querySelector('title').textContent === t);
    return {
      frame: g.querySelector('rect').getBoundingClientRect().width,
      frames: document.getElementById('frames').getBoundingClientRect().width,
      unzoom: !document.getElementById('unzoom').classList.contains('hide'),
    };
  }, seen.frame.title);
  check(zoomed.unzoom && zoomed.frame >= 0.98 * zoomed.frames,
        `zoom ${hottest}: its frame is ${zoomed.frame.toFixed(1)}px of ${zoomed.frames.toFixed(1)}px`);
  console.log(`first screen: hover and zoom on ${hottest} work`);
}));
EOF

echo "checking $svg in $("$chromium_bin" --version 2>/dev/null)"
mkdir -p "$scratch/profile"
TMPDIR=$scratch/profile node "$scratch/node/check.js" "$svg" "$shot" "$chromium_bin" "$scratch/profile" ||
    fail "browser check of the flame graph (see above)"
[[ -s $shot ]] || fail "no screenshot at $shot"

first_screen=${shot%.png}-first-screen.png
echo "checking the first screen of the deep profile's graph"
TMPDIR=$scratch/profile node "$scratch/node/first-screen.js" "$deep_svg" "$first_screen" \
    "$chromium_bin" "$scratch/profile" "$hottest_name" ||
    fail "the first screen of the deep profile's graph (see above; screenshot: $first_screen)"

echo "screenshots: $shot (search: ${shot%.png}-search.png, zoom: ${shot%.png}-zoom.png;" \
    "the deep profile's first screen: $first_screen)"
echo "svg browser check: ok"
