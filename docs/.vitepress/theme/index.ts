// The default theme with the site's search box (one index over the guide,
// the annotated source and the API) in the nav bar, and the site's colours.
import DefaultTheme from 'vitepress/theme';
import { h } from 'vue';
import SiteSearch from './SiteSearch.vue';
import './custom.css';

export default {
  extends: DefaultTheme,
  Layout: () => h(DefaultTheme.Layout, null, { 'nav-bar-content-after': () => h(SiteSearch) }),
};
