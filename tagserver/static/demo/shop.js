/* tagserver demo shop: a one-product shop whose cart lives in localStorage. It makes the calls a
   real shop makes; tagserver answers with the Pixel commands and sends the Conversions API events. */
(function () {
  'use strict';
  var PRODUCT = { id: '04639', name: 'Trail Mug', price: 24.9, currency: 'EUR' };
  var page = document.documentElement.getAttribute('data-page');

  function cart() { return JSON.parse(localStorage.getItem('demo-cart') || '[]'); }
  function total(items) {
    return Math.round(items.reduce(function (s, i) { return s + i.price * i.quantity; }, 0) * 100) / 100;
  }
  function contents(items) {
    return items.map(function (i) { return { id: i.id, quantity: i.quantity, item_price: i.price }; });
  }
  function $(id) { return document.getElementById(id); }

  if (page === 'product') {
    tagserver('track', 'ViewContent', { content_ids: [PRODUCT.id], content_type: 'product',
      content_name: PRODUCT.name, value: PRODUCT.price, currency: PRODUCT.currency });
  }
  if (page === 'checkout' && cart().length) {
    var items = cart();
    tagserver('track', 'InitiateCheckout', { value: total(items), currency: PRODUCT.currency,
      contents: contents(items), num_items: items.length });
  }
  if (page === 'thanks') {
    var orderId = new URLSearchParams(location.search).get('order') || '';
    var order = JSON.parse(sessionStorage.getItem('demo-order-' + orderId) || 'null');
    if (order) {
      if (order.email) tagserver('user', { em: order.email });  // to tagserver only; hashed there
      // the event id comes from the order id: a reload sends the same id, Meta keeps one
      tagserver('track', 'Purchase', { value: total(order.items), currency: PRODUCT.currency,
        contents: contents(order.items), content_ids: [PRODUCT.id], content_type: 'product',
        order_id: orderId }, { eventID: 'purchase-' + orderId });
    }
  }

  document.addEventListener('DOMContentLoaded', function () {
    if ($('count')) $('count').textContent = cart().length;
    if ($('add')) {
      $('add').addEventListener('click', function () {
        var items = cart();
        items.push({ id: PRODUCT.id, price: PRODUCT.price, quantity: 1 });
        localStorage.setItem('demo-cart', JSON.stringify(items));
        $('count').textContent = items.length;
        $('added').hidden = false;
        tagserver('track', 'AddToCart', { content_ids: [PRODUCT.id], content_type: 'product',
          value: PRODUCT.price, currency: PRODUCT.currency });
      });
    }
    if ($('checkout')) {
      var items = cart();
      $('summary').textContent = items.length
        ? items.length + ' × ' + PRODUCT.name + ' — €' + total(items).toFixed(2)
        : 'Your cart is empty.';
      $('checkout').hidden = !items.length;
      $('checkout').addEventListener('submit', function (e) {
        e.preventDefault();
        var id = String(Date.now()).slice(-6);
        sessionStorage.setItem('demo-order-' + id,
          JSON.stringify({ items: items, email: $('email').value }));
        localStorage.removeItem('demo-cart');
        location.href = '/demo/thanks?order=' + id;
      });
    }
    if ($('order')) $('order').textContent = new URLSearchParams(location.search).get('order');
  });
})();
