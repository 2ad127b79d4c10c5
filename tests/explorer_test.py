"""explorer_test.py REPORT_DIR CASES — drives index.html's routing explorer in headless
Chromium (Debian's chromium, chromium-driver and python3-selenium) and checks what the DOM
shows against `routerscope export`.

CASES: lines "RUN_ID EXPORT_CSV VIEW" — for each, the explorer's run RUN_ID is chosen, then
the block of each MoE slot and VIEW as the compared view; the mouse is moved onto patches
of VIEW (the first patch with a match in view 0 that no other patch of VIEW shares, and the
first without a match, if any); the detail table must then name the matched view-0 patch
(the `match` column), outline it in the view-0 grid, and give for both patches the
experts and probabilities (`expert`, `gate` to 3 decimals) of the export's rows of that
image, view, layer and token. A tap (click) on view 0's patch must do the same from that
side. At 900 px and at 390 px (a phone) nothing may stick out sideways; at 900 px the two
grids sit side by side, at 390 px one above the other.

Prints "ok NAME" / "FAIL NAME" lines and "explorer: N passed, M failed"; exits 1 on a
failure."""
import csv
import sys

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

passed = failed = 0


def expect(name, cond, detail=''):
    global passed, failed
    if cond:
        passed += 1
        print('ok   ' + name)
    else:
        failed += 1
        print('FAIL ' + name + (': ' + detail if detail else ''))


def read_export(path):
    """{(image, view, layer, patch): {"match": m, "ranks": [(expert, gate), ...]}} of patch rows."""
    out = {}
    with open(path) as f:
        for row in csv.DictReader(f):
            if row['is_cls'] == '1':
                continue
            key = (int(row['image']), int(row['view']), int(row['layer']), int(row['patch']))
            e = out.setdefault(key, {'match': int(row['match']), 'ranks': []})
            e['ranks'].append((int(row['rank']), int(row['expert']), float(row['gate'])))
    for e in out.values():
        e['ranks'] = [(x, g) for _, x, g in sorted(e['ranks'])]
    return out


def shown_row(d, view, patch):
    """The detail table's row of VIEW and PATCH as [(expert, prob text)], or None."""
    rows = d.find_elements(By.CSS_SELECTOR, '.rsx-detail tr[data-view="%d"][data-patch="%d"]' % (view, patch))
    if len(rows) != 1:
        return None
    return [(int(td.get_attribute('data-expert')), td.get_attribute('data-prob'), td.text)
            for td in rows[0].find_elements(By.CSS_SELECTOR, 'td.rsx-exp')]


def same_experts(name, d, rows, image, view, layer, patch):
    got = shown_row(d, view, patch)
    want = rows[(image, view, layer, patch)]['ranks']
    ok = got is not None and len(got) == len(want) and all(
        e == we and p == '%.3f' % wg and ('expert %d' % we) in text and p in text
        for (e, p, text), (we, wg) in zip(got, want))
    expect('%s: view %d patch %d shows the export\'s experts and probabilities' % (name, view, patch), ok,
           'page %s, export %s' % (got, ['%d %.3f' % w for w in want]))


def cell(d, view, patch):
    return d.find_element(By.CSS_SELECTOR, '.rsx-panel[data-view="%d"] .rsx-cell[data-patch="%d"]' % (view, patch))


def hover(d, view, patch):
    c = cell(d, view, patch)
    d.execute_script('arguments[0].scrollIntoView({block: "center"})', c)
    ActionChains(d).move_to_element(c).perform()


def check_case(d, run_id, rows, view):
    run = Select(d.find_element(By.ID, 'rsx-run'))
    want = [o for o in run.options if '(run %d)' % run_id in o.text]
    expect('run %d can be chosen' % run_id, len(want) == 1)
    if not want:
        return
    run.select_by_value(want[0].get_attribute('value'))
    images = Select(d.find_element(By.ID, 'rsx-image'))
    images.select_by_index(len(images.options) - 1)  # the last example image: the choice must follow
    image = int(Select(d.find_element(By.ID, 'rsx-image')).first_selected_option.get_attribute('value'))
    expect('run %d stays chosen with image %d' % (run_id, image),
           '(run %d)' % run_id in Select(d.find_element(By.ID, 'rsx-run')).first_selected_option.text)
    layers = len(Select(d.find_element(By.ID, 'rsx-layer')).options)
    for layer in range(layers):
        Select(d.find_element(By.ID, 'rsx-layer')).select_by_value(str(layer))
        if view > 0:
            Select(d.find_element(By.ID, 'rsx-view')).select_by_value(str(view))
        name = 'run %d image %d layer %d' % (run_id, image, layer)
        patches = sorted(p for (i, v, l, p) in rows if (i, v, l) == (image, view, layer))
        match = {p: rows[(image, view, layer, p)]['match'] for p in patches}
        unique = [p for p in patches if match[p] >= 0 and list(match.values()).count(match[p]) == 1]
        expect(name + ': a patch with one match exists', bool(unique))
        moved = [p for p in unique if match[p] != p]  # a crop's patch: not at its own index
        if unique:
            j = (moved or unique)[len(moved or unique) // 2]
            m = match[j]
            hover(d, view, j)
            expect(name + ': hover on view %d patch %d outlines view-0 patch %d' % (view, j, m),
                   'rsx-hit' in cell(d, 0, m).get_attribute('class')
                   and 'rsx-sel' in cell(d, view, j).get_attribute('class'))
            same_experts(name, d, rows, image, view, layer, j)
            same_experts(name, d, rows, image, 0, layer, m)
            cell(d, 0, m).click()  # a tap, from view 0's side
            expect(name + ': a tap on view-0 patch %d outlines view %d patch %d' % (m, view, j),
                   'rsx-hit' in cell(d, view, j).get_attribute('class')
                   and 'rsx-sel' in cell(d, 0, m).get_attribute('class'))
            same_experts(name + ' (tap)', d, rows, image, view, layer, j)
        lone = [p for p in patches if match[p] < 0]
        if lone:
            hover(d, view, lone[0])
            head = d.find_element(By.CSS_SELECTOR, '.rsx-dhead').text
            expect(name + ': an unmatched patch says it has no match', 'no match in view 0' in head
                   and shown_row(d, 0, -1) is not None, head)
            same_experts(name + ' (unmatched)', d, rows, image, view, layer, lone[0])


def check_layout(d, width):
    d.set_window_size(width, 1000)
    inner = d.execute_script('return window.innerWidth')
    d.execute_script('document.getElementById("explore").scrollIntoView()')
    over = d.execute_script('return document.documentElement.scrollWidth')
    expect('%d px: nothing sticks out sideways' % width, over <= inner, 'scrollWidth %d > %d' % (over, inner))
    tops = [p.rect['y'] for p in d.find_elements(By.CSS_SELECTOR, '.rsx-panel')]
    if width >= 900:
        expect('%d px: the two grids side by side' % width, len(tops) == 2 and tops[0] == tops[1], str(tops))
    else:
        expect('%d px: the grids one above the other' % width, len(tops) == 2 and tops[0] < tops[1], str(tops))


def main():
    report, cases = sys.argv[1], sys.argv[2]
    opts = Options()
    for a in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'):
        opts.add_argument(a)
    d = webdriver.Chrome(service=Service(), options=opts)
    try:
        d.set_window_size(900, 1000)
        d.get('file://' + report + '/index.html')
        errors = [e for e in d.get_log('browser') if e['level'] == 'SEVERE']
        expect('the page loads without script errors', not errors, str(errors))
        expect('the explorer is drawn', len(d.find_elements(By.CSS_SELECTOR, '#rsx-app .rsx-cell')) > 0)
        for line in open(cases):
            run_id, path, view = line.split()
            check_case(d, int(run_id), read_export(path), int(view))
        check_layout(d, 900)
        check_layout(d, 390)
    finally:
        d.quit()
    print('explorer_test.py: %d passed, %d failed' % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == '__main__':
    main()
